"""aldlab.rag"""
