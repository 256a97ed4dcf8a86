"""What one run is: the LightningModule, the Jacobian producer, methods, losses, metrics,
callbacks, checkpoints, distribution, random state, and the LightningCLI that configures and
launches one run."""
