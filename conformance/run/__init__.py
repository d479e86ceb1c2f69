"""One run of the suites: its spec (spec.py), where its files go (layout.py), the cases
pytest collects (cases.py), the pytest session that runs them (session.py), and what
the machine must offer (environment.py). The CLI and the plugin use it; it uses neither.
"""
