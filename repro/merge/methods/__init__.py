"""Our merge methods, one small file each; each defines a mergekit `MergeMethod` object."""
