"""A user's own setting: a model the harness does not ship, on data loaded by a function (README, "Your own model and data")."""
