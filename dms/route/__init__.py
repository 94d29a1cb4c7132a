"""Where each unit runs: queue names, the lanes of a request, scheduler policies (plugins),
the placement of cross-cluster units on NIC pairs, and the NICs' link state.
"""
