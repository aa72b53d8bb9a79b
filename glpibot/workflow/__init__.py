"""The ticket lifecycle: one pass over eligible tickets, and one ticket's attempt."""
