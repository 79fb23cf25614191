"""The remote side: the SSH session, the protocol its scripts speak, and the scripts themselves."""
