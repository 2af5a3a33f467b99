"""vitserve HTTP service: every built variant behind one Predictor interface."""
