if __name__ == "__main__":  # guarded: spawned worker processes import this module too, and need nothing of it
    from pca_batch.cli import main

    raise SystemExit(main())
