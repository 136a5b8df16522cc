"""callserver: browser video calls where everyone hears the others in their own language."""

__version__ = "0.1.0"
