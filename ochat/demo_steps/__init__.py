"""The steps of `python -m ochat.demo`, each a function of one `Demo` run (its output folder, its servers), so a
demo on a real model can run the same steps with its own choices."""
