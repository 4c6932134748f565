"""
On-disk storage: content-addressed blobs and upload sessions.
"""
