"""The interface server: the project's daphne, run without Django (`python -m interface`), so it can
run on a current Python while the Django workers stay on 3.7."""
