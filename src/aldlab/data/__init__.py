"""aldlab.data"""
