"""Third-party Flashbots clients, each in its own environment, against `blockspace serve`."""
