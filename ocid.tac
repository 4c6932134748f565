"""
Run the registry with C{twistd -ny ocid.tac}, configured from the environment:

  OCID_DATA           data directory (default /srv/ocid)
  OCID_PORT           endpoint descriptions, separated by spaces (default tcp:5000)
  OCID_UPLOAD_EXPIRY  seconds before an untouched upload is removed (default 86400)
  OCID_IDLE_TIMEOUT   seconds before an idle connection is closed (default 60)
"""

import os

from twisted.application.service import Application

from ocid import registryService

application = Application("ocid")
registryService(
    os.environ.get("OCID_DATA", "/srv/ocid"),
    os.environ.get("OCID_PORT", "tcp:5000").split(),
    uploadExpiry=float(os.environ.get("OCID_UPLOAD_EXPIRY", 86400)),
    idleTimeout=float(os.environ.get("OCID_IDLE_TIMEOUT", 60)),
).setServiceParent(application)
