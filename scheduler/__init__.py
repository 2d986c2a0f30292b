"""The beat schedule. Run exactly one beat per deployment: two would enqueue every entry twice."""
