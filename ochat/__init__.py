"""ochat: an open, single-node reproduction of OpenChat."""
