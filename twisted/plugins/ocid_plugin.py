"""
The C{twistd ocid} plugin.
"""

from twisted.application.service import ServiceMaker

ocid = ServiceMaker(
    "ocid", "ocid.tap", "An OCI Distribution container registry.", "ocid"
)
