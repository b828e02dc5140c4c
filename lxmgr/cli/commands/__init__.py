"""One module per `lxmgr` verb; each reaches lxmgrd through the App's client only."""
