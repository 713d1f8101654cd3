"""aldlab.serve"""
