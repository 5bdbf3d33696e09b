"""The project: settings, entry points (manage.py, wsgi.py, asgi.py), routing and channel layers."""
import warnings

# cryptography warns on every import under Python 3.7 ("Python 3.7 is no longer supported"): nothing a
# user can act on here. Every process imports this package before cryptography (it holds the
# settings and the entry points), so this one filter silences it everywhere.
warnings.filterwarnings("ignore", message="Python 3.7 is no longer supported")
