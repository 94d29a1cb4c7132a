"""Planning, the first stage: walk the source, diff it against the destination, and cut
what must move into transfer units.

walk lists and stats the tree (one native call per directory), diff decides what already
matches (rsync's quick check, --checksum, links), fanout spreads the walk over dms.walk
tasks, remote_check asks a receiver across clusters, order deals large files' chunks
out across files, and planner turns it all into stored shards and units.
"""
