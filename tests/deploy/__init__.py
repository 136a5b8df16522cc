"""`make test-deploy`: the container image and the Swarm stack on a real Docker engine.

Not part of `make test` (minutes, root, a Docker engine): nothing here is named ``test_*.py``,
so pytest never collects it; scripts/test-deploy.sh builds the images and runs
``python -m tests.deploy.scenario``.
"""
