from build_models.cli import main

raise SystemExit(main())
