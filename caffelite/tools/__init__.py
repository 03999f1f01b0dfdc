"""What the CLI presents: drawings, plots, file inspection, metrics, progress, layer docs."""
