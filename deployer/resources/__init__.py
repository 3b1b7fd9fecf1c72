"""One module per AWS resource. Each step reads with plan() and changes with apply(); deploy.py orders them."""
