"""Loop 2: mine good memory decisions, build datasets, train a memory specialist."""
