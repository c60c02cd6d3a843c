from pca_batch.cli import main

raise SystemExit(main())
