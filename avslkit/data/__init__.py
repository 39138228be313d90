"""Data: HDF5 clip stores, preprocessing, audio features, annotations, transforms, datasets."""
