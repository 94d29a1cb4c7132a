"""The file-system rules every stage follows: confinement below a root without following
a symbolic link (beneath), path checks and staging names (paths), the clusters' roots
(roots), rsync's filter rules (filters), and how a name that is not text is shown (names).
"""
