"""
Tests for ocid.
"""
