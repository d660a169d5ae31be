"""The defence bundle: its format, verification and results (docs/spec/bundle.md).

Never imports a store, a home or a database driver: this is what defence counsel
runs on their own machine.
"""
