"""Example applications on the user-level stacks, and the demo."""
