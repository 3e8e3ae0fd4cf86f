-- The Phone App tab and the sandbox find customers by their Microsoft 365 tenant.
CREATE INDEX teams_settings_tenant ON teams_settings (tenant_id);
