import t from 'tap';
import {
  filesServiceUrl,
  mountSource,
  nfsSource,
  sameSource,
  shareHost,
  sharePort,
  shareUrl,
  smbSource,
} from '../../../src/tasks/share-mount/endpoint.js';

const base = {
  type: 'smb' as const,
  account: 'contosofiles',
  name: 'workspace',
  endpointSuffix: 'core.windows.net',
  host: undefined,
  filesEndpoint: undefined,
};

t.test('endpoints per cloud and override', async (t) => {
  const cases = [
    {
      name: 'public cloud',
      share: base,
      host: 'contosofiles.file.core.windows.net',
      smb: '//contosofiles.file.core.windows.net/workspace',
      nfs: 'contosofiles.file.core.windows.net:/contosofiles/workspace',
      rest: 'https://contosofiles.file.core.windows.net/workspace',
    },
    {
      name: 'Azure China suffix',
      share: { ...base, endpointSuffix: 'core.chinacloudapi.cn' },
      host: 'contosofiles.file.core.chinacloudapi.cn',
      smb: '//contosofiles.file.core.chinacloudapi.cn/workspace',
      nfs: 'contosofiles.file.core.chinacloudapi.cn:/contosofiles/workspace',
      rest: 'https://contosofiles.file.core.chinacloudapi.cn/workspace',
    },
    {
      name: 'US Government suffix',
      share: { ...base, endpointSuffix: 'core.usgovcloudapi.net' },
      host: 'contosofiles.file.core.usgovcloudapi.net',
      smb: '//contosofiles.file.core.usgovcloudapi.net/workspace',
      nfs: 'contosofiles.file.core.usgovcloudapi.net:/contosofiles/workspace',
      rest: 'https://contosofiles.file.core.usgovcloudapi.net/workspace',
    },
    {
      name: 'lab suffix',
      share: { ...base, endpointSuffix: 'contoso.test' },
      host: 'contosofiles.file.contoso.test',
      smb: '//contosofiles.file.contoso.test/workspace',
      nfs: 'contosofiles.file.contoso.test:/contosofiles/workspace',
      rest: 'https://contosofiles.file.contoso.test/workspace',
    },
    // A private endpoint's own name: SMB goes there, REST keeps the public name its certificate is for.
    {
      name: 'host override (private endpoint, mixed case)',
      share: { ...base, host: 'Contosofiles.PrivateLink.file.core.windows.net' },
      host: 'contosofiles.privatelink.file.core.windows.net',
      smb: '//contosofiles.privatelink.file.core.windows.net/workspace',
      nfs: 'contosofiles.privatelink.file.core.windows.net:/contosofiles/workspace',
      rest: 'https://contosofiles.file.core.windows.net/workspace',
    },
    {
      name: 'host override with an IP',
      share: { ...base, host: '10.1.2.3' },
      host: '10.1.2.3',
      smb: '//10.1.2.3/workspace',
      nfs: '10.1.2.3:/contosofiles/workspace',
      rest: 'https://contosofiles.file.core.windows.net/workspace',
    },
    {
      name: 'filesEndpoint path-style for a local server',
      share: { ...base, filesEndpoint: 'https://127.0.0.1:4443/contosofiles/' },
      host: 'contosofiles.file.core.windows.net',
      smb: '//contosofiles.file.core.windows.net/workspace',
      nfs: 'contosofiles.file.core.windows.net:/contosofiles/workspace',
      rest: 'https://127.0.0.1:4443/contosofiles/workspace',
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      t.equal(shareHost(c.share), c.host);
      t.equal(smbSource(c.share), c.smb);
      t.equal(nfsSource(c.share), c.nfs);
      t.equal(shareUrl(c.share), c.rest);
      t.equal(filesServiceUrl(c.share), c.rest.replace(/\/workspace$/, ''));
    });
  }
});

t.test('source and port follow the protocol', async (t) => {
  t.equal(mountSource(base), '//contosofiles.file.core.windows.net/workspace');
  t.equal(mountSource({ ...base, type: 'nfs' }), 'contosofiles.file.core.windows.net:/contosofiles/workspace');
  t.equal(sharePort(base), 445);
  t.equal(sharePort({ type: 'nfs' }), 2049);
});

t.test('sameSource', async (t) => {
  const cases: Array<{ name: string; found: string; wanted: string; type: 'smb' | 'nfs'; same: boolean }> = [
    { name: 'smb identical', found: '//a.file.core.windows.net/ws', wanted: '//a.file.core.windows.net/ws', type: 'smb', same: true },
    {
      name: 'smb case-insensitive',
      found: '//A.FILE.core.windows.net/WS',
      wanted: '//a.file.core.windows.net/ws',
      type: 'smb',
      same: true,
    },
    { name: 'smb trailing slash', found: '//a.file.core.windows.net/ws/', wanted: '//a.file.core.windows.net/ws', type: 'smb', same: true },
    { name: 'smb backslashes', found: '\\\\a.file.core.windows.net\\ws', wanted: '//a.file.core.windows.net/ws', type: 'smb', same: true },
    { name: 'smb other share', found: '//a.file.core.windows.net/other', wanted: '//a.file.core.windows.net/ws', type: 'smb', same: false },
    { name: 'smb other account', found: '//b.file.core.windows.net/ws', wanted: '//a.file.core.windows.net/ws', type: 'smb', same: false },
    {
      name: 'nfs host case-insensitive',
      found: 'A.file.core.windows.net:/a/ws',
      wanted: 'a.file.core.windows.net:/a/ws',
      type: 'nfs',
      same: true,
    },
    {
      name: 'nfs path case-sensitive',
      found: 'a.file.core.windows.net:/a/WS',
      wanted: 'a.file.core.windows.net:/a/ws',
      type: 'nfs',
      same: false,
    },
  ];
  for (const c of cases) t.equal(sameSource(c.found, c.wanted, c.type), c.same, c.name);
});
