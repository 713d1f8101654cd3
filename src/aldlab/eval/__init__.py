"""aldlab.eval"""
