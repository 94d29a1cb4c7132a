"""The last stage: verify every staged chunk again, publish files, links and directory
metadata, and run the --delete pass.
"""
