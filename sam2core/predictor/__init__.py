"""Building blocks of the streaming `VideoPredictor`: typed state, memory bank, feature cache, frame preprocessing."""
