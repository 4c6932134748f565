"""
The HTTP API: Klein routes for the OCI Distribution endpoints, request body streaming for
blob uploads, and streamed blob downloads.
"""
