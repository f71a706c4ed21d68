"""The data subsystem: what an ImageFolder root holds, checked before a run trusts it.

Modules: `listing` (the images of a split, listed exactly as torchvision's ImageFolder lists
them, and what the walk finds wrong), `images` (decoding one image as training does, and what
can go wrong), `cache` (the check's results, kept outside the dataset), `check` (the parallel
decode of every image, and what a run may train on), `identity` (the class map and fingerprint a
run records), `dataset` (a listed split as a torch Dataset), `data_command` (`roadmap data
check`).
"""
