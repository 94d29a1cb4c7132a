"""The second stage: move one transfer unit with the native core, locally (a sliced copy)
or to a remote receiver (a sliced send), and publish the whole files it copied.
"""
