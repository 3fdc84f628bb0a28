"""`discriminator preview`: serve a package to real players, and check that they play it."""
