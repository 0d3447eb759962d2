//! Port manager: the wire protocol, the client and the daqportmgr daemon.
