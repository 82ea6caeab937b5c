"""One owner per stored shape: what the workers write and every reader reads goes through
these modules (the archive's layout, the suppression list, ...), so a new column is added in
one place. They build on the kernel alone; the wings (consumer, insights, collector,
producer) build on them and never on each other's internals.
"""
