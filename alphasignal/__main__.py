from alphasignal.cli import main

raise SystemExit(main())
