"""
A side-by-side benchmark of ocid against the reference registry (distribution 2.8).

Run it with C{python -m bench} from the repository root; see C{bench/README.md}.
"""
