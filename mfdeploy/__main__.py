from mfdeploy.cli import main

raise SystemExit(main())
