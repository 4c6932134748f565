"""
ocid: an OCI Distribution registry daemon on Twisted.

Embed it in another Twisted program with L{registryService}, or mount its HTTP API under an
existing L{twisted.web.server.Site} with L{registryResource}.
"""

from ocid.service import RegistryService, registryResource, registryService

__all__ = ["RegistryService", "registryResource", "registryService"]
