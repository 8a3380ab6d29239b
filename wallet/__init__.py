"""An organisation's wallet: credential store, presentations, pipeline client and QR codes."""
