"""Use cases of certgate. Services import the pure core and ``services.ports`` only: no web
framework, no database driver. Adapters (storage, api, console, cli) call them."""
