"""Benchmarks of CohortSync at scale (`python manage.py bench`, docs/benchmarks.md).

Plain Python on top of the project's services: the command only parses its flags and
calls bench.suite. Every measured step runs in a fresh subprocess (bench.steps) so its
peak memory is its own, and the emulators run in another process so their CPU is not
counted as ours.
"""
