from colorlab.cli import main

raise SystemExit(main())
