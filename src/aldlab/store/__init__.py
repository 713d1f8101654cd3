"""aldlab.store"""
