"""The git-push PaaS (Dokku / mini-Heroku): apps, config, domains, releases, builds, deploys."""
