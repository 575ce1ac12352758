"""The demo AEP sandbox: a simulator of the documented AEP APIs with a bundled demo dataset."""
