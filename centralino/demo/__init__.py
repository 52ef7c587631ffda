"""Demo ERP and CRM services: owners of their data, reached over real HTTP."""
